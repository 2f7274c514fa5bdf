/* schema.h — the store's migrations: obra_migrations[i] (1-based) brings
 * user_version i-1 to i (SQLite, src/schema.c); obra_pg_migrations[i] is the
 * same step in PostgreSQL's dialect (src/pgschema.c).  The two lists have the
 * same length: a new migration is written in both.  Used only by store.c and
 * pgstore.c. */
#ifndef OBRA_SCHEMA_H
#define OBRA_SCHEMA_H
extern const char *const obra_migrations[];
extern const int obra_migrations_count;
extern const char *const obra_pg_migrations[];
extern const int obra_pg_migrations_count;
#endif
