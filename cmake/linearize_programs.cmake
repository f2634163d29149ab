# The example and benchmark programs. Each reuses the shared precompiled header and reads its
# command line with CLI11 (examples/cli.hpp); with the tests, each gets ctest checks that
# `--help` exits 0 and an unknown option exits 2, both writing nothing where they run.
find_package(CLI11 2.1 REQUIRED)

# linearize_program(name source [NO_CLI]): NO_CLI for programs whose command line is another
# library's (Google Benchmark's flags): only `--help` is checked there.
function(linearize_program name source)
  cmake_parse_arguments(PARSE_ARGV 2 arg "NO_CLI" "" "")
  add_executable(${name} ${source})
  linearize_use_pch(${name})
  target_link_libraries(${name} PRIVATE CLI11::CLI11)
  if(LINEARIZE_BUILD_TESTS)
    linearize_program_test(${name} help "--help" 0 "[Uu]sage|benchmark_filter")
    if(NOT arg_NO_CLI)
      # (a program with a required option may name that first)
      linearize_program_test(${name} unknown_option "--no-such-option" 2 "--no-such-option|is required")
    endif()
  endif()
endfunction()

# A ctest named <program>_<check>: `program args` in an empty directory exits with `status`,
# prints something matching `message` and writes no file (tests/programs/run_check.cmake).
# `ENV NAME=value...` runs it with those variables set.
function(linearize_program_test program check args status message)
  cmake_parse_arguments(PARSE_ARGV 5 arg "" "" "ENV")
  string(JOIN "@@" env ${arg_ENV})  # a ;-list would be split into arguments
  add_test(NAME ${program}_${check}
           COMMAND ${CMAKE_COMMAND} -DPROGRAM=$<TARGET_FILE:${program}> "-DARGS=${args}"
                   -DSTATUS=${status} "-DMESSAGE=${message}" "-DENV=${env}"
                   -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/check_${program}_${check}
                   -P ${PROJECT_SOURCE_DIR}/tests/programs/run_check.cmake)
endfunction()
