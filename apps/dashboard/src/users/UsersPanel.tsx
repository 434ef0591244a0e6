import { CreateUser } from './CreateUser';
import { StreamAll } from './StreamAll';
import { UserList } from './UserList';

export function UsersPanel() {
  return (
    <div className="users">
      <div className="users-left">
        <CreateUser />
        <StreamAll />
      </div>
      <UserList />
    </div>
  );
}
