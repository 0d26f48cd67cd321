"""The evaluation stage (``run``): what is asked (``items``), the metrics, the plots and the tables (``report``)."""
