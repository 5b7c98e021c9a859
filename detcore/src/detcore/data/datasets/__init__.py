"""Detection datasets: COCO (pycocotools), PASCAL VOC XML and the manual's middle format (`003` §2.4.1)."""
