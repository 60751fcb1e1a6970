"""bytewax building blocks ``(step_id, up, ...) -> Stream``: decode, rules, windows, alerts."""
