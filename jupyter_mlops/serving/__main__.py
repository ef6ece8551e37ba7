from jupyter_mlops.backends.limits import wait_until_joined

# Before the model (and so its code) is loaded: inside the server's CPU and memory limits.
wait_until_joined()

from .app import main  # noqa: E402

main()
