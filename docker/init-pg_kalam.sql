-- Runs once, when the container's cluster is created: pg_kalam and a server for the bundled kalamdb-server.
CREATE EXTENSION IF NOT EXISTS pg_kalam;
CREATE SERVER kalam_server FOREIGN DATA WRAPPER pg_kalam OPTIONS (host '127.0.0.1', port '2910');
