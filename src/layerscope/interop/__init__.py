"""Exchange with other tools: the report's NN_data.json format."""

from layerscope.interop.seed_json import (
    FILE_METHOD,
    NNData,
    NNDataError,
    export_nn_data,
    import_nn_data,
    read_nn_data,
)

__all__ = ["FILE_METHOD", "NNData", "NNDataError", "export_nn_data", "import_nn_data", "read_nn_data"]
