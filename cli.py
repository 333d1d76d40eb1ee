"""Command-line entry points: the ``blurgen`` and ``trainer`` click groups.

The commands only parse arguments, call library functions and print; the work
lives in the ``blurgen`` and ``trainer`` packages.  Errors a user can cause are
raised as ``click.UsageError``/``click.ClickException`` (one line, exit 2/1),
never as tracebacks.
"""
import click


class UserError(click.ClickException):
    """A one-line error caused by the user's input; exits with status 2."""

    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.format_message()}", err=True)


@click.group()
def blurgen():
    """Synthesize motion-blurred / sharp training pairs."""


@click.group()
def trainer():
    """Train and evaluate the DeblurGAN conditional GAN."""


# --- blurgen: kernels (make-kernels, show-kernels) ---------------------------


# --- blurgen: synthesis (synthesize, inspect, verify) ------------------------


# --- trainer: fit, eval, deblur ------------------------------------------------
