CMakeFiles/engine.dir/src/linear.c.o: /work/main/src/linear.c \
 /usr/include/stdc-predef.h /work/main/include/linear.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h \
 /work/main/include/gemm.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stdbool.h
