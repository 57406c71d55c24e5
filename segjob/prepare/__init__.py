"""Source columns to model columns: types, missing values, transforms, outliers, scaling, one-hot."""
