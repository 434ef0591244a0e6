CREATE TABLE "user_count_slots" (
	"slot" smallint PRIMARY KEY NOT NULL,
	"n" bigint NOT NULL
);
--> statement-breakpoint
-- Written by hand below (drizzle-kit writes no triggers): users.list's exact total without count(*).
-- A write adds its row count to one slot in its own transaction, so any snapshot sees rows and counts agree;
-- the slot is the writer's backend pid % 16, so concurrent writers seldom wait on one row lock.
INSERT INTO "user_count_slots" ("slot", "n") SELECT s, 0 FROM generate_series(0, 15) AS s;
--> statement-breakpoint
CREATE FUNCTION "users_count_add"() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  delta bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    SELECT count(*) INTO delta FROM new_rows;
  ELSE
    SELECT -count(*) INTO delta FROM old_rows;
  END IF;
  -- A statement that wrote no row takes no lock.
  IF delta <> 0 THEN
    UPDATE "user_count_slots" SET "n" = "n" + delta WHERE "slot" = pg_backend_pid() % 16;
  END IF;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE FUNCTION "users_count_truncated"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE "user_count_slots" SET "n" = 0 WHERE "n" <> 0;
  RETURN NULL;
END
$$;
--> statement-breakpoint
CREATE TRIGGER "users_count_insert" AFTER INSERT ON "users" REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION "users_count_add"();
--> statement-breakpoint
CREATE TRIGGER "users_count_delete" AFTER DELETE ON "users" REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION "users_count_add"();
--> statement-breakpoint
CREATE TRIGGER "users_count_truncate" AFTER TRUNCATE ON "users" FOR EACH STATEMENT EXECUTE FUNCTION "users_count_truncated"();
--> statement-breakpoint
-- The backfill. CREATE TRIGGER locked users against writes until this migration commits, so no row can be
-- written between this count and the triggers taking over.
UPDATE "user_count_slots" SET "n" = (SELECT count(*) FROM "users") WHERE "slot" = 0;
