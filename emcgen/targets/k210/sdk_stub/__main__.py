"""Print the folder of the SDK declaration stubs (used by the generated README's compile check)."""
from . import PATH

print(PATH)
