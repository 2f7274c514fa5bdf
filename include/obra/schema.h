/* schema.h — the store's migrations: obra_migrations[i] (1-based) brings
 * user_version i-1 to i.  Used only by store.c. */
#ifndef OBRA_SCHEMA_H
#define OBRA_SCHEMA_H
extern const char *const obra_migrations[];
extern const int obra_migrations_count;
#endif
