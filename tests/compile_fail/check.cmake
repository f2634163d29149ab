# ctest driver for a compile-fail test: building TARGET must fail, and the compiler's output must
# contain the message written after "// expect: " on the first line of SOURCE.
file(STRINGS ${SOURCE} first LIMIT_COUNT 1)
string(REGEX REPLACE "^// expect: " "" expected "${first}")
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  message(FATAL_ERROR "${TARGET}: compiled, but it must be rejected with '${expected}'")
endif()
string(FIND "${out}${err}" "${expected}" at)
if(at EQUAL -1)
  message(FATAL_ERROR "${TARGET}: rejected, but without the message '${expected}':\n${out}${err}")
endif()
message(STATUS "${TARGET}: rejected with '${expected}'")
