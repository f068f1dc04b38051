file(REMOVE_RECURSE
  "CMakeFiles/test_idx.dir/test_idx.c.o"
  "CMakeFiles/test_idx.dir/test_idx.c.o.d"
  "test_idx"
  "test_idx.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/test_idx.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
