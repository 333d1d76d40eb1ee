"""Command-line entry points: the ``blurgen`` and ``trainer`` click groups."""
import click


@click.group()
def blurgen():
    """Synthesize motion-blurred / sharp training pairs."""


@click.group()
def trainer():
    """Train and evaluate the DeblurGAN conditional GAN."""
