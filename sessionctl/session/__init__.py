"""Sessions: open one on a next step, record work into it, close it into a log entry and changes."""
