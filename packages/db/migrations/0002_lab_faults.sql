CREATE TABLE "lab_faults" (
	"procedure" text PRIMARY KEY NOT NULL,
	"latency_ms" integer NOT NULL,
	"error_rate" double precision NOT NULL,
	"updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "lab_faults_latency_ms_range" CHECK ("lab_faults"."latency_ms" between 0 and 60000),
	CONSTRAINT "lab_faults_error_rate_range" CHECK ("lab_faults"."error_rate" between 0 and 1)
);
