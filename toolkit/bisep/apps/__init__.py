"""What the ``bisep`` commands do, as functions Python users can call: each command-line
module parses its arguments and calls one of these."""
