# failover/: the role state machine (failover/role.h), driven by a fake lease
# store and a fake clock. Included from tests/CMakeLists.txt after the litejet_* helpers.
litejet_unit(test_role)
