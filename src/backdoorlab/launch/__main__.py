"""`python -m backdoorlab.launch`: see backdoorlab.launch.cli."""
from backdoorlab.launch.cli import main

main()
