"""brushwork: teach generative models a body of artwork, then make new work with them."""

__version__ = "0.1.0"
