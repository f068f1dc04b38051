CMakeFiles/engine.dir/src/activation.c.o: /work/main/src/activation.c \
 /usr/include/stdc-predef.h /work/main/include/activation.h \
 /usr/lib/gcc/x86_64-linux-gnu/12/include/stddef.h
