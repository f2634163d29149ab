# Including <torch/torch.h> costs 15-25 s per translation unit on 2 cores. Every test, example
# and benchmark here reuses one precompiled header built once by `linearize_pch`.
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/linearize_pch.cpp "// anchor for the shared precompiled header\n")
add_library(linearize_pch STATIC ${CMAKE_CURRENT_BINARY_DIR}/linearize_pch.cpp)
target_link_libraries(linearize_pch PUBLIC linearize::linearize)
target_precompile_headers(linearize_pch PRIVATE <torch/torch.h> <boost/hana.hpp> <nlohmann/json.hpp>
                          <fmt/format.h>)
linearize_warnings(linearize_pch)

# Gives `target` the shared precompiled header. Flags must match the anchor's, so every user
# gets the same warnings and the same link to linearize.
function(linearize_use_pch target)
  target_link_libraries(${target} PRIVATE linearize::linearize)
  linearize_warnings(${target})
  target_precompile_headers(${target} REUSE_FROM linearize_pch)
endfunction()
