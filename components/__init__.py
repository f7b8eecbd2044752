"""coco's ComponentResources and the settings that drive them."""
