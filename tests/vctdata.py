"""A VCT file written by hand from GB/T 17798-2007's structure (not by landquota's writer).

It is the referee between the reader and the writer: both are tested against it, so
they cannot agree on a wrong format. Coordinates are CGCS2000 / 3-degree Gauss-Krüger
CM 114E (EPSG:4547) near Yangshan; the expected geometries are spelled out below.
"""

from __future__ import annotations

from pathlib import Path

import shapely

# DLTB 11: outer ring = line 101 (SE corner → west → north → NE corner) then line 102
# backwards (-102: NE corner → SE corner), then a break (0) and the hole, line 103.
# DLTB 12: line 104 (NE corner of 11 → east → south → back west) then line 102 forwards.
# XZQ 1: direct coordinates, one ring.
PARCEL_11 = shapely.Polygon(
    [(370100, 2710000), (370000, 2710000), (370000, 2710100), (370100, 2710100), (370100, 2710000)],
    [[(370020, 2710020), (370040, 2710020), (370040, 2710040), (370020, 2710040), (370020, 2710020)]],
)
PARCEL_12 = shapely.Polygon(
    [(370100, 2710100), (370200.5, 2710100), (370200.5, 2710000.25), (370100, 2710000), (370100, 2710100)]
)
COUNTY_1 = shapely.Polygon(
    [(369900, 2709900), (370300, 2709900), (370300, 2710200), (369900, 2710200), (369900, 2709900)]
)

TEXT = """\
CommentBegin
手工按 GB/T 17798-2007 结构编写的测试文件（两个图层，线构面含岛，GB18030 属性）
CommentEnd
HeadBegin
DataMark:CNSDTF-VCT
Version:2.0
CoordinateSystemType:P
Dim:2
XAxisDirection:E
YAxisDirection:N
XYUnit:M
Spheroid:CGCS2000,6378137,298.257222101
PrimeMeridian:Greenwich
Projection:高斯-克吕格
Parameters:114,0,,,,1,500000,0,3
VerticalDatum:1985国家高程基准
TemporalReferenceSystem:公元纪年
ExtentMin:369900,2709900
ExtentMax:370300,2710200
MapScale:10000
Offset:0,0
Date:20191231
Separator:,
HeadEnd

FeatureCodeBegin
1000600100,行政区,Polygon,XZQ
2001010000,地类图斑,Polygon,DLTB
2001010300,地类图斑界线,Line,DLJX
FeatureCodeEnd

TableStructureBegin
XZQ,3
BSM,Int,10
XZQDM,Char,12
XZQMC,Char,100
0
DLTB,7
BSM,Int,10
DLBM,Char,5
DLMC,Char,60
ZLDWMC,Char,60
TBMJ,Float,15,2
KCXS,Float,6,4
GXSJ,Date,8
0
DLJX,1
BSM,Int,10
0
TableStructureEnd

PointBegin
PointEnd

LineBegin
101
2001010300
0
1
1
11
4
370100,2710000
370000,2710000
370000,2710100
370100,2710100
0
102
2001010300
0
1
1
11
2
370100,2710000
370100,2710100
0
103
2001010300
0
1
1
11
5
370020,2710020
370040,2710020
370040,2710040
370020,2710040
370020,2710020
0
104
2001010300
0
1
1
11
4
370100,2710100
370200.5,2710100
370200.5,2710000.25
370100,2710000
0
LineEnd

PolygonBegin
1
1000600100
0
1
370100,2710050
1
11
5
369900,2709900
370300,2709900
370300,2710200
369900,2710200
369900,2709900
0
11
2001010000
0
100
370010,2710050
21
4
101,-102,0,103
0
12
2001010000
0
100
370150,2710050
21
2
104
102
0
PolygonEnd

AnnotationBegin
900
2001010000
0
1
阳山镇
370050,2710050,0
0
AnnotationEnd

AttributeBegin
XZQ
1,441823,阳山县
TableEnd
DLTB
11,0101,水田,阳城镇,9600.00,0.0000,20191231
12,0301,乔木林地,𠮷田村,10012.55,0.0500,
TableEnd
DLJX
101
102
103
104
TableEnd
AttributeEnd
"""


def write_fixture(path: Path) -> Path:
    """Write the fixture as a delivery would: GB18030 bytes, CRLF line ends."""
    path.write_bytes(TEXT.replace("\n", "\r\n").encode("gb18030"))
    return path
