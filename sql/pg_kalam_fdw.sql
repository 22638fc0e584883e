-- The foreign data wrapper. Its handler and validator functions are defined by the extension
-- library (src/handler.rs); servers are created by users:
--   CREATE SERVER s FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '2910');
CREATE FOREIGN DATA WRAPPER pg_kalam
    HANDLER pg_kalam_fdw_handler
    VALIDATOR pg_kalam_fdw_validator;
