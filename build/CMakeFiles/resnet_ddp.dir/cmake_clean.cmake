file(REMOVE_RECURSE
  "CMakeFiles/resnet_ddp.dir/src/main.c.o"
  "CMakeFiles/resnet_ddp.dir/src/main.c.o.d"
  "resnet_ddp"
  "resnet_ddp.pdb"
)

# Per-language clean rules from dependency scanning.
foreach(lang C)
  include(CMakeFiles/resnet_ddp.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
