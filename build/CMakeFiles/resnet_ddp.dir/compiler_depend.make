# Empty compiler generated dependencies file for resnet_ddp.
# This may be replaced when dependencies are built.
