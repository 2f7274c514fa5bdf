/* walvfs.h — SQLite's default VFS with a transaction's write-ahead log frames
 * written in one system call (walvfs.c). */
#ifndef OBRA_WALVFS_H
#define OBRA_WALVFS_H

/* The name of the VFS to open obra's databases with (sqlite3_open_v2's
 * zVfs), registered on first call; NULL (the default VFS) when it cannot be. */
const char *obra_walvfs(void);

#endif
