-- Distribute the tables over a Citus cluster, when the database has the citus extension and the
-- migrator did not opt out (URL parameter distribute=false sets adk_sessions.distribute = 'off'
-- for this transaction). Without Citus, or opted out, this migration changes nothing.
--
-- Sessions, their events and user state are hash-distributed by user_id and co-located, so every
-- statement about one session, and the whole append transaction, runs on the one worker that
-- holds that user's shard. App state is distributed by app_name: an append with app: keys writes
-- one more shard (the app's), never every node as a reference table would. Distribution columns
-- are part of every primary key, unique constraint and foreign key, as Citus requires. Existing
-- rows are copied into the shards and the coordinator's local copies truncated. The shard count
-- is Citus's citus.shard_count (32 unless set before migrating). The tables are named in the
-- schema lock_migrations recorded for this transaction (adk_sessions.schema), or, when the
-- script runs on its own, in the current schema.
DO $$
DECLARE
    s text := quote_ident(coalesce(nullif(current_setting('adk_sessions.schema', true), ''),
                                   current_schema()));
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus')
       AND coalesce(current_setting('adk_sessions.distribute', true), '') <> 'off' THEN
        PERFORM create_distributed_table((s || '.adk_sessions')::regclass, 'user_id');
        PERFORM create_distributed_table(
            (s || '.adk_events')::regclass, 'user_id', colocate_with => s || '.adk_sessions');
        PERFORM create_distributed_table(
            (s || '.adk_user_states')::regclass, 'user_id', colocate_with => s || '.adk_sessions');
        PERFORM create_distributed_table(
            (s || '.adk_app_states')::regclass, 'app_name', colocate_with => 'none');
        PERFORM truncate_local_data_after_distributing_table((s || '.adk_events')::regclass);
        PERFORM truncate_local_data_after_distributing_table((s || '.adk_sessions')::regclass);
        PERFORM truncate_local_data_after_distributing_table((s || '.adk_user_states')::regclass);
        PERFORM truncate_local_data_after_distributing_table((s || '.adk_app_states')::regclass);
    END IF;
END
$$;
