#!/usr/bin/env bash
# Restore a backup made by scripts/backup.sh.
#
#   scripts/restore.sh [--force] [DATABASE] FILE
#
# DATABASE is given as to backup.sh (a URL, a connection string or a name; default
# $DATABASE_URL) and must already exist. The restore refuses a database that holds any
# table unless --force is given; with --force, every object in the backup is dropped and
# recreated (objects the backup does not contain are left alone).
#
# Everything happens in one transaction: if any step fails, the database is left exactly
# as it was. Objects are owned by the role restoring them (--no-owner), so a backup can be
# restored on another server with other role names.
set -euo pipefail

usage() {
  echo "usage: $0 [--force] [DATABASE_URL] FILE" >&2
  exit 2
}

force=0
positional=()
for arg in "$@"; do
  case $arg in
    --force) force=1 ;;
    -h|--help) usage ;;
    -*) echo "unknown option: $arg" >&2
        usage ;;
    *) positional+=("$arg") ;;
  esac
done
case ${#positional[@]} in
  1) database=${DATABASE_URL:?"DATABASE_URL is not set: give the database before FILE"}
     file=${positional[0]} ;;
  2) database=${positional[0]}
     file=${positional[1]} ;;
  *) usage ;;
esac

if [[ ! -r $file ]]; then
  echo "cannot read $file" >&2
  exit 1
fi
pg_restore --list "$file" >/dev/null

existing=$(psql --no-password --no-psqlrc --quiet --tuples-only --no-align \
  --dbname="$database" --command="
    SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
      AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\_%'")
if (( existing > 0 && ! force )); then
  echo "refusing to restore: the database already holds $existing tables, views or" \
       "sequences; restore into an empty database, or pass --force to replace them" >&2
  exit 3
fi

options=(--no-password --dbname="$database" --no-owner --no-privileges
         --single-transaction --exit-on-error)
if (( force )); then
  options+=(--clean --if-exists)
fi
pg_restore "${options[@]}" "$file"
echo "restored $file"
