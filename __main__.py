"""coco: build the stack described by this stack's `coco:` configuration."""

from components.settings import load
from components.stack import build

build(load())
