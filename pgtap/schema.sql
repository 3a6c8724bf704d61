-- schema.sql: the durable schema exists and reports its version (mirrors sql/schema.sql).
BEGIN;
SELECT plan(3);

SELECT has_schema('durable', 'the durable schema exists');
SELECT function_returns(
    'durable', 'schema_version', ARRAY[]::name[], 'integer',
    'durable.schema_version() returns an integer'
);
SELECT cmp_ok(durable.schema_version(), '>=', 1, 'the schema version is at least 1');

SELECT * FROM finish();
ROLLBACK;
