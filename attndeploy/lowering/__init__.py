"""Export-time lowerings of operators that no exporter handles on its own (torchvision's deform_conv2d)."""
