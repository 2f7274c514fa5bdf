# tests/support/pg.sh — a PostgreSQL server of the project's own, sourced by
# tests/run (the specs: OBRA_TEST_PG, tests/support/pg.lua) and by `make
# bench` (section 9 on PostgreSQL).  Needs $base (a scratch directory).
#
#   pg_start [durable]   start it; exports OBRA_TEST_PG=<socket directory>, or
#                        OBRA_TEST_PG_ERROR=<why not>
#   pg_stop              stop it (pg_ctl stop -m immediate) and remove it
#
# One server for the whole run, only when a selected spec requires
# support.pg: a copy of an initdb'd template (initdb itself takes seconds; the
# template is made once per PostgreSQL version under $base) in /dev/shm, a
# unix socket in its directory and no TCP, trust authentication, superuser
# "obra".  As root
# the server runs as the postgres system user.  Stopped on exit, whatever
# happens (pg_ctl stop -m immediate).
pg_dir=""
pg_bin=""
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
pg_stop() {
  [ -n "$pg_dir" ] || return 0
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1
  rm -rf "$pg_dir"
}
pg_start() {
  # "durable": the server's defaults (make bench); else (the specs) no fsync,
  # and no autovacuum: its launcher starts a worker, a new backend (~36 ms of
  # CPU here), for one database after another, and the specs' databases live
  # seconds (the server's CPU over the PostgreSQL specs: 29.9 -> 26.3 s), and
  # 16 MB of shared buffers (a dropped database's are scanned one by one).
  local pg_fast="-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c autovacuum=off -c shared_buffers=16MB"
  [ "${1:-}" = durable ] && pg_fast=""
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ] || [ ! -x "$pg_bin/pg_ctl" ]; then
    export OBRA_TEST_PG_ERROR="PostgreSQL is not installed: run \`make deps\`"
    return
  fi
  local tpl="$base/pg-template-$(basename "$(dirname "$pg_bin")")-w1"
  if [ ! -d "$tpl" ]; then
    local fresh; fresh=$(mktemp -d "$base/pg-template.XXXXXX") || return
    [ "$(id -u)" = 0 ] && chown postgres "$fresh"
    if as_pg "$pg_bin/initdb" -D "$fresh/data" -A trust -U obra -N -E UTF8 --locale=C --wal-segsize=1 >"$fresh/initdb.log" 2>&1; then
      mv -T "$fresh" "$tpl" 2>/dev/null || rm -rf "$fresh"      # another run made it first
    else
      export OBRA_TEST_PG_ERROR="initdb failed: $(tail -n 3 "$fresh/initdb.log" | tr '\n' ' ')"
      rm -rf "$fresh"; return
    fi
  fi
  # in memory when there is /dev/shm (copying to disk takes seconds on a busy
  # machine); a durable server on disk, where fsync means something
  local mem=/tmp; [ -d /dev/shm ] && [ -w /dev/shm ] && [ -n "$pg_fast" ] && mem=/dev/shm
  pg_dir=$(mktemp -d "$mem/obra-pg.XXXXXX") || return
  chmod 0755 "$pg_dir"
  cp -a "$tpl/data" "$pg_dir/data"
  [ "$(id -u)" = 0 ] && chown postgres "$pg_dir"
  if as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w -t 30 -o "-k $pg_dir -c listen_addresses='' \
       $pg_fast -c max_connections=200 \
       -c dynamic_shared_memory_type=mmap" start >/dev/null 2>&1; then
    export OBRA_TEST_PG="$pg_dir"
  else
    export OBRA_TEST_PG_ERROR="the test server did not start: $(tail -n 3 "$pg_dir/log" 2>/dev/null | tr '\n' ' ')"
  fi
}
