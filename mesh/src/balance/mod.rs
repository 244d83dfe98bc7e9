//! Load balancing: choosing an endpoint for each connection or request.
