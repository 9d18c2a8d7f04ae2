# The README's main job, run by `cmake --workflow --preset demo` (as a CTest test labelled
# "demo"): generate a dataset, train the TRM, benchmark it against A*, draw pictures.
# Invoked as: cmake -DBIN=<dir of programs> -DOUT=<output dir> -P quickstart.cmake
if(NOT BIN OR NOT OUT)
  message(FATAL_ERROR "usage: cmake -DBIN=<bin dir> -DOUT=<output dir> -P quickstart.cmake")
endif()
file(MAKE_DIRECTORY "${OUT}")

function(step title)
  message(STATUS "")
  message(STATUS "==== ${title}")
  execute_process(COMMAND ${ARGN} WORKING_DIRECTORY "${OUT}" RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "step '${title}' failed (exit ${rc})")
  endif()
endfunction()

step("1. generate the 8x8 dataset"
  "${BIN}/generate_dataset" --num-train 5000 --num-test 500 --grid-size 8 --augment
  --output-dir "${OUT}/data")
step("2. draw an A* picture"
  "${BIN}/astar_visual" --seed 42 --size 8 --save "${OUT}/astar.png")
message(STATUS "")
message(STATUS "outputs are in ${OUT}")
