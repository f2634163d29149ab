# ctest driver: runs PROGRAM with ARGS (one string, split like a shell would; ENV: variables) in an empty
# directory WORK_DIR and checks its exit status (STATUS, default 0), that its output matches
# MESSAGE (a regular expression, when given), that it printed no sanitizer report and that it left
# no file behind: `--help` and a refused command line must do nothing else.
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
separate_arguments(args UNIX_COMMAND "${ARGS}")
if(NOT DEFINED STATUS)
  set(STATUS 0)
endif()
# ENV: NAME=value pairs joined by @@, set for the program only.
set(launcher)
if(ENV)
  string(REPLACE "@@" ";" env "${ENV}")
  set(launcher ${CMAKE_COMMAND} -E env ${env})
endif()
execute_process(COMMAND ${launcher} ${PROGRAM} ${args} WORKING_DIRECTORY ${WORK_DIR}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(shown "'${ENV} ${PROGRAM} ${ARGS}'\n--- stdout:\n${out}\n--- stderr:\n${err}")
if(NOT rc STREQUAL "${STATUS}")
  message(FATAL_ERROR "${shown}\nexited with status ${rc}; expected ${STATUS}")
endif()
# Under the Sanitize build a report can come with the expected status (ASan and UBSan exit 1).
if("${out}${err}" MATCHES "ERROR: (Address|Leak)Sanitizer|runtime error: ")
  message(FATAL_ERROR "${shown}\nprinted a sanitizer report")
endif()
if(DEFINED MESSAGE AND NOT "${out}${err}" MATCHES "${MESSAGE}")
  message(FATAL_ERROR "${shown}\nprinted nothing matching '${MESSAGE}'")
endif()
file(GLOB left LIST_DIRECTORIES true RELATIVE ${WORK_DIR} ${WORK_DIR}/* ${WORK_DIR}/.*)
list(FILTER left EXCLUDE REGEX "^\\.\\.?$")
if(left)
  message(FATAL_ERROR "${shown}\nleft files in its working directory: ${left}")
endif()
file(REMOVE_RECURSE ${WORK_DIR})
