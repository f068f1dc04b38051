# Empty dependencies file for test_idx.
# This may be replaced when dependencies are built.
