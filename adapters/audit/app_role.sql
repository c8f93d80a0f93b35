-- The gateway's application role on PostgreSQL: reads and writes the ledger, and may only
-- append to and read the audit trail. Run once per database, as the owner of the tables,
-- after `gateway migrate`; the gateway then connects as a login role that is a member of it:
--   create role gateway_login login password '...' in role gateway_app;
-- The trigger of migration 0007_audit refuses UPDATE/DELETE/TRUNCATE of audit_events for
-- every role anyway; the grants below make the refusal a permission error as well.
do $$
begin
  create role gateway_app nologin;
exception when duplicate_object or unique_violation then
  null;  -- roles are per cluster: another database of the cluster created it
end
$$;

grant usage on schema public to gateway_app;
grant select, insert, update, delete on all tables in schema public to gateway_app;
grant usage, select on all sequences in schema public to gateway_app;
revoke update, delete, truncate on audit_events from gateway_app;
revoke all on alembic_version from gateway_app;
grant select on alembic_version to gateway_app;
