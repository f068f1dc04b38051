
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/src/activation.c" "CMakeFiles/engine.dir/src/activation.c.o" "gcc" "CMakeFiles/engine.dir/src/activation.c.o.d"
  "/work/main/src/arena.c" "CMakeFiles/engine.dir/src/arena.c.o" "gcc" "CMakeFiles/engine.dir/src/arena.c.o.d"
  "/work/main/src/batchnorm.c" "CMakeFiles/engine.dir/src/batchnorm.c.o" "gcc" "CMakeFiles/engine.dir/src/batchnorm.c.o.d"
  "/work/main/src/comm.c" "CMakeFiles/engine.dir/src/comm.c.o" "gcc" "CMakeFiles/engine.dir/src/comm.c.o.d"
  "/work/main/src/config.c" "CMakeFiles/engine.dir/src/config.c.o" "gcc" "CMakeFiles/engine.dir/src/config.c.o.d"
  "/work/main/src/conv.c" "CMakeFiles/engine.dir/src/conv.c.o" "gcc" "CMakeFiles/engine.dir/src/conv.c.o.d"
  "/work/main/src/data.c" "CMakeFiles/engine.dir/src/data.c.o" "gcc" "CMakeFiles/engine.dir/src/data.c.o.d"
  "/work/main/src/error.c" "CMakeFiles/engine.dir/src/error.c.o" "gcc" "CMakeFiles/engine.dir/src/error.c.o.d"
  "/work/main/src/gemm.c" "CMakeFiles/engine.dir/src/gemm.c.o" "gcc" "CMakeFiles/engine.dir/src/gemm.c.o.d"
  "/work/main/src/idx.c" "CMakeFiles/engine.dir/src/idx.c.o" "gcc" "CMakeFiles/engine.dir/src/idx.c.o.d"
  "/work/main/src/linear.c" "CMakeFiles/engine.dir/src/linear.c.o" "gcc" "CMakeFiles/engine.dir/src/linear.c.o.d"
  "/work/main/src/loss.c" "CMakeFiles/engine.dir/src/loss.c.o" "gcc" "CMakeFiles/engine.dir/src/loss.c.o.d"
  "/work/main/src/pool.c" "CMakeFiles/engine.dir/src/pool.c.o" "gcc" "CMakeFiles/engine.dir/src/pool.c.o.d"
  "/work/main/src/resnet.c" "CMakeFiles/engine.dir/src/resnet.c.o" "gcc" "CMakeFiles/engine.dir/src/resnet.c.o.d"
  "/work/main/src/sgd.c" "CMakeFiles/engine.dir/src/sgd.c.o" "gcc" "CMakeFiles/engine.dir/src/sgd.c.o.d"
  "/work/main/src/train.c" "CMakeFiles/engine.dir/src/train.c.o" "gcc" "CMakeFiles/engine.dir/src/train.c.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
