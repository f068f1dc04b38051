file(REMOVE_RECURSE
  "CMakeFiles/test_conv.dir/test_conv.c.o"
  "CMakeFiles/test_conv.dir/test_conv.c.o.d"
  "test_conv"
  "test_conv.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_conv.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
