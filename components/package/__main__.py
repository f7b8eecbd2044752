"""`python -m components.package <engine address>`: serve the coco component package."""

import sys

from components.package.provider import main

main(sys.argv[1:])
