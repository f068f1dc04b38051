# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/build/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test(test_config "/work/main/build/tests/test_config")
set_tests_properties(test_config PROPERTIES  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1;RESNET_DDP_BIN=/work/main/build/resnet_ddp;RESNET_DDP_SOURCE=/work/main" TIMEOUT "600" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;16;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(test_conv "/work/main/build/tests/test_conv")
set_tests_properties(test_conv PROPERTIES  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1;RESNET_DDP_BIN=/work/main/build/resnet_ddp;RESNET_DDP_SOURCE=/work/main" TIMEOUT "600" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;16;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(test_data "/work/main/build/tests/test_data")
set_tests_properties(test_data PROPERTIES  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1;RESNET_DDP_BIN=/work/main/build/resnet_ddp;RESNET_DDP_SOURCE=/work/main" TIMEOUT "600" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;16;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(test_idx "/work/main/build/tests/test_idx")
set_tests_properties(test_idx PROPERTIES  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1;RESNET_DDP_BIN=/work/main/build/resnet_ddp;RESNET_DDP_SOURCE=/work/main" TIMEOUT "600" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;16;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(cli_bad_input "bash" "/work/main/tests/cli/bad_input.sh")
set_tests_properties(cli_bad_input PROPERTIES  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1;RESNET_DDP_BIN=/work/main/build/resnet_ddp;RESNET_DDP_SOURCE=/work/main" TIMEOUT "900" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;24;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(cli_train_smoke "bash" "/work/main/tests/cli/train_smoke.sh")
set_tests_properties(cli_train_smoke PROPERTIES  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1;RESNET_DDP_BIN=/work/main/build/resnet_ddp;RESNET_DDP_SOURCE=/work/main" TIMEOUT "900" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;24;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test(cli_usage "bash" "/work/main/tests/cli/usage.sh")
set_tests_properties(cli_usage PROPERTIES  ENVIRONMENT "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OPENBLAS_NUM_THREADS=1;RESNET_DDP_BIN=/work/main/build/resnet_ddp;RESNET_DDP_SOURCE=/work/main" TIMEOUT "900" WORKING_DIRECTORY "/work/main" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;24;add_test;/work/main/tests/CMakeLists.txt;0;")
