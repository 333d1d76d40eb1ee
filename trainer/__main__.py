"""``python -m trainer``: the ``trainer`` command line, as ``trainer launch`` starts its ranks."""
from trainer.commands import trainer

trainer(prog_name="trainer")
