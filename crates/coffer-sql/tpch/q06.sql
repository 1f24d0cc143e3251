-- TPC-H Q6, forecasting revenue change. DATE = 1994-01-01, DISCOUNT = 0.06, QUANTITY = 24.
-- The bounds DISCOUNT - 0.01 and DISCOUNT + 0.01 are written out: as float arithmetic
-- 0.06 + 0.01 falls just below 0.07 and would drop rows the specification includes.
select
    sum(l_extendedprice * l_discount) as revenue
from lineitem
where l_shipdate >= date '1994-01-01'
    and l_shipdate < date '1994-01-01' + interval '1 year'
    and l_discount between 0.05 and 0.07
    and l_quantity < 24
