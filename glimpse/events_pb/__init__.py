"""Protobuf code for the SeaweedFS filer notification payload (filer_pb.EventNotification).

filer_pb2.py is generated from filer.proto; see its header for how to regenerate it.
"""
