# ctest driver for the data-parallel checks: runs COMMAND (one string, run by sh, so that it can
# clear a directory first) and checks its exit status (STATUS) and that its output matches each
# regular expression of MESSAGES (separated by @@), printing everything it said either way.
execute_process(COMMAND sh -c "${COMMAND}" RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(shown "'${COMMAND}'\n--- stdout:\n${out}\n--- stderr:\n${err}")
message("${shown}")
if(NOT rc STREQUAL "${STATUS}")
  message(FATAL_ERROR "exited with status ${rc}; expected ${STATUS}")
endif()
string(REPLACE "@@" ";" expectations "${MESSAGES}")
foreach(expected IN LISTS expectations)
  if(NOT "${out}${err}" MATCHES "${expected}")
    message(FATAL_ERROR "printed nothing matching '${expected}'")
  endif()
endforeach()
