"""Search a folder of one's own media with a trained run: the folder scan (scan.py), the embedder of
files, arrays and sentences (embedder.py), the index folder's format (store.py), the resumable indexing
job (build.py), exact and faiss search (search.py) and the local web page (page.py)."""
