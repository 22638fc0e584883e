SELECT s_name, s_address
FROM supplier, nation
WHERE s_suppkey IN (
    SELECT ps_suppkey
    FROM partsupp,
         (SELECT l_partkey AS agg_partkey, l_suppkey AS agg_suppkey, 0.5 * sum(l_quantity) AS agg_quantity
          FROM lineitem
          WHERE l_shipdate >= date '1994-01-01' AND l_shipdate < date '1994-01-01' + interval '1' year
          GROUP BY l_partkey, l_suppkey) AS agg_lineitem
    WHERE agg_partkey = ps_partkey AND agg_suppkey = ps_suppkey
      AND ps_partkey IN (SELECT p_partkey FROM part WHERE p_name LIKE 'forest%')
      AND ps_availqty > agg_quantity)
  AND s_nationkey = n_nationkey AND n_name = 'CANADA'
ORDER BY s_name
