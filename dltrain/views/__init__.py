"""What the user sees: tables and figures. Views render what they are given; they train and write nothing else."""
