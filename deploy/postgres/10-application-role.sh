#!/bin/sh
# Run once by the postgres image when the data volume is first created: the role the API
# connects as. It owns nothing; `habeas db grant habeas_app` (the migrate service) gives
# it the working tables, and only SELECT/INSERT on the audit trail.
set -eu
psql -v ON_ERROR_STOP=1 -v app_password="$HABEAS_APP_DB_PASSWORD" \
  --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" <<'SQL'
CREATE ROLE habeas_app LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD :'app_password';
SQL
