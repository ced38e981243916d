# The fuzz executables, built by tests/fuzz/CMakeLists.txt (engine "driver", with the project's
# compiler) or by standalone/CMakeLists.txt (engine "libfuzzer", with clang). Inputs:
#   MOUSSE_ROOT         the repository root
#   MOUSSE_FUZZ_ENGINE  libfuzzer | driver
#   MOUSSE_FUZZ_FLAGS   sanitizer flags for compiling and linking everything below (may be empty)
# The code under test is compiled here again, with the sanitizers (and libFuzzer's coverage), from
# the same sources as the project's libraries.
find_package(nlohmann_json 3 REQUIRED)
find_package(ZLIB REQUIRED)
find_package(PkgConfig REQUIRED)
pkg_check_modules(MOUSSE_FUZZ_ZSTD REQUIRED IMPORTED_TARGET libzstd)
find_library(MOUSSE_FUZZ_SNAPPY_LIB snappy REQUIRED)
find_path(MOUSSE_FUZZ_SNAPPY_INC snappy.h REQUIRED)

set(_fuzz_dir ${CMAKE_CURRENT_LIST_DIR})
set(_compile ${MOUSSE_FUZZ_FLAGS})
set(_link ${MOUSSE_FUZZ_FLAGS})
if(MOUSSE_FUZZ_ENGINE STREQUAL "libfuzzer")
  list(APPEND _compile -fsanitize=fuzzer-no-link)
endif()

function(_mousse_fuzz_lib name)
  add_library(${name} STATIC ${ARGN})
  target_compile_options(${name} PRIVATE ${_compile})
  target_link_libraries(${name} PUBLIC nlohmann_json::nlohmann_json)
  target_link_options(${name} INTERFACE ${_link})
endfunction()

# tools/readers (mousse-tokenize's inputs)
_mousse_fuzz_lib(mousse_fuzz_readers
  ${MOUSSE_ROOT}/tools/readers/input_error.cpp
  ${MOUSSE_ROOT}/tools/readers/thrift_compact.cpp
  ${MOUSSE_ROOT}/tools/readers/parquet.cpp
  ${MOUSSE_ROOT}/tools/readers/jsonl.cpp
  ${MOUSSE_ROOT}/tools/readers/text.cpp
  ${MOUSSE_ROOT}/tools/readers/inputs.cpp
  ${MOUSSE_ROOT}/tools/readers/byte_stream.cpp
  ${MOUSSE_ROOT}/tools/tokenizer/utf8.cpp)
target_include_directories(mousse_fuzz_readers PUBLIC ${MOUSSE_ROOT}/tools ${MOUSSE_ROOT}/tools/tokenizer
  PRIVATE ${MOUSSE_FUZZ_SNAPPY_INC})
target_link_libraries(mousse_fuzz_readers PRIVATE ZLIB::ZLIB PkgConfig::MOUSSE_FUZZ_ZSTD ${MOUSSE_FUZZ_SNAPPY_LIB})

# src/: safetensors, llm.c shards, the run config
_mousse_fuzz_lib(mousse_fuzz_trainer_io
  ${MOUSSE_ROOT}/src/core/json_config.cpp
  ${MOUSSE_ROOT}/src/core/safetensors.cpp
  ${MOUSSE_ROOT}/src/core/tensor.cpp
  ${MOUSSE_ROOT}/src/data/shard.cpp
  ${MOUSSE_ROOT}/src/model/model_config.cpp
  ${MOUSSE_ROOT}/src/train/schedule.cpp
  ${MOUSSE_ROOT}/src/train/run_config.cpp)
target_include_directories(mousse_fuzz_trainer_io PUBLIC ${MOUSSE_ROOT}/src)

_mousse_fuzz_lib(mousse_fuzz_common ${_fuzz_dir}/fuzz_common.cpp)
target_include_directories(mousse_fuzz_common PUBLIC ${_fuzz_dir})

set(MOUSSE_FUZZ_TARGETS parquet jsonl safetensors shard config)
set(_libs_parquet mousse_fuzz_readers)
set(_libs_jsonl mousse_fuzz_readers)
set(_libs_safetensors mousse_fuzz_trainer_io)
set(_libs_shard mousse_fuzz_trainer_io)
set(_libs_config mousse_fuzz_trainer_io)

# fuzz_<name>: the target with libFuzzer's main or the driver's.
function(_mousse_fuzz_exe exe name engine)
  add_executable(${exe} ${_fuzz_dir}/fuzz_${name}.cpp)
  target_compile_options(${exe} PRIVATE ${_compile})
  target_link_libraries(${exe} PRIVATE ${_libs_${name}} mousse_fuzz_common)
  if(engine STREQUAL "libfuzzer")
    target_link_options(${exe} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${exe} PRIVATE ${_fuzz_dir}/fuzz_driver.cpp)
  endif()
endfunction()

foreach(t ${MOUSSE_FUZZ_TARGETS})
  _mousse_fuzz_exe(fuzz_${t} ${t} ${MOUSSE_FUZZ_ENGINE})
endforeach()
if(MOUSSE_FUZZ_ENGINE STREQUAL "libfuzzer")
  # The fallback driver, built here too so that it keeps compiling and working where libFuzzer is.
  _mousse_fuzz_exe(fuzz_jsonl_driver jsonl driver)
endif()
