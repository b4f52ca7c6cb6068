# Used by bench/run through -DCMAKE_PROJECT_INCLUDE=... so the benchmarks
# build even while the top CMakeLists.txt does not say add_subdirectory(bench):
# includes bench/CMakeLists.txt at the end of the top directory (an include,
# because deferred calls may not create subdirectories), unless the top-level
# file already added it.
set(_LITEJET_BENCH_DIR "${CMAKE_CURRENT_LIST_DIR}")
macro(_litejet_bench_add)
  if(NOT TARGET commit_bench)
    include("${_LITEJET_BENCH_DIR}/CMakeLists.txt")
  endif()
endmacro()
if(CMAKE_CURRENT_SOURCE_DIR STREQUAL CMAKE_SOURCE_DIR AND NOT _LITEJET_BENCH_DEFERRED)
  set(_LITEJET_BENCH_DEFERRED 1)
  cmake_language(DEFER CALL _litejet_bench_add)
endif()
