"""What is done with a study's winners: confirm them, evaluate them, export them."""
