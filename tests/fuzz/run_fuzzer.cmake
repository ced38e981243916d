# Runs one fuzz target for SECONDS over the seed corpus CORPUS (read only; new inputs go to
# WORK/new, findings to WORK/artifacts/, scratch files to WORK/tmp). cmake -DFUZZER= -DCORPUS= -DWORK= -DSECONDS= [-DDICT=] -P
foreach(v FUZZER CORPUS WORK SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_fuzzer.cmake needs -D${v}=")
  endif()
endforeach()
if(NOT EXISTS ${FUZZER})
  message(FATAL_ERROR "${FUZZER} is missing: build the project first")
endif()
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK}/new ${WORK}/artifacts ${WORK}/tmp)
# The targets' scratch files (fuzz_common.cpp) go under WORK: libFuzzer ends the process without
# running the destructor that would remove them from the system temp folder.
set(ENV{TMPDIR} ${WORK}/tmp)
set(args -max_total_time=${SECONDS} -seed=1 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536
         -print_final_stats=1 -artifact_prefix=${WORK}/artifacts/)
if(DICT)
  list(APPEND args -dict=${DICT})
endif()
execute_process(COMMAND ${FUZZER} ${args} ${WORK}/new ${CORPUS} RESULT_VARIABLE rc)
file(GLOB found ${WORK}/artifacts/*)
if(NOT rc EQUAL 0 OR found)
  message(FATAL_ERROR "${FUZZER} found a failing input (exit ${rc}): ${found}\n"
                      "Reproduce with: ${FUZZER} <input>. Once fixed, add the input to ${CORPUS}/ as a regression seed.")
endif()
